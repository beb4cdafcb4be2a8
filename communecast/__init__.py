"""The `communecast` command: one entry point for controller, agents, simulator and demo."""
