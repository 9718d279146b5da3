"""What the engine runs on: run stores, job slots, the fork gate, the device, torch threads."""
