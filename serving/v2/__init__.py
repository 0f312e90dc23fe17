"""The Open Inference Protocol (KServe V2) REST API: codec and routes."""
