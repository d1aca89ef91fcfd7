"""Deployment stage 'compare' as a script; the same as `mersdk export compare` (see mersdk/export_cli.py)."""

import sys

from mersdk.export_cli import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("compare"))
