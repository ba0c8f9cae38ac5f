"""Graphs exported for LangGraph's tooling (``langgraph.json``): the DRR graph and an agent app."""
