"""FLARE's ``nvflare.client.cell``: the Client API of a training script in a process of its own."""
