"""`python main.py --env CartPole-v1 --config config.ini`: `alchemy train` with those options."""

import sys

if __name__ == "__main__":
    from neuralalchemy.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
