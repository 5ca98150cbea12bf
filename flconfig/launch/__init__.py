"""The one-machine simulator behind ``flconfig launch``: plan the worker processes, start,
watch and stop the server, the sites and TensorBoard (:mod:`.launcher`)."""
