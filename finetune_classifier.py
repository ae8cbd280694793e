"""The 2017 script name for `sentiment-discovery finetune`; takes the same flags."""

import sys

from sentiment_discovery.cli import main

if __name__ == "__main__":
    sys.exit(main(["finetune", *sys.argv[1:]]))
