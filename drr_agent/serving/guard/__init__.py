"""Code that runs inside the vLLM server process (``.venv-vllm``), not in drr-agent's.

This folder goes on the vLLM process's ``PYTHONPATH`` and its modules are imported there by
their bare names, so they import nothing from drr-agent (vLLM's environment does not have it)
and depend only on what vLLM itself ships (starlette).
"""
