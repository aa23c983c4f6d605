#!/usr/bin/env bash
# The demo: grows as the project does. Currently: build and show the CLI.
set -euo pipefail
./bin/smtrain version
./bin/smtrain help
