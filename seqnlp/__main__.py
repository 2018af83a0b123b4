"""``python -m seqnlp`` runs the CLI (and lets launchers such as torchrun start it as a module)."""

from seqnlp.cli import main

main()
