"""``python -m drr_agent`` runs the ``drr`` command line."""

from drr_agent.cli import main

main()
