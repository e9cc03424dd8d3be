"""python -m pipeline."""

from pipeline.cli.app import run

if __name__ == "__main__":
    run()
