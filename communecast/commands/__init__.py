"""Subcommands of `communecast`: each module has `register(subparsers)`.

Modules import their side (controller, agent, simulator) inside the handlers, so a
Raspberry Pi with only the agent extra installed can still run `communecast agent ...`.
"""
