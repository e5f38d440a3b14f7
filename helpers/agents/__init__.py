"""Agents track (notebooks 02-07): tools from typed functions, the agent loop, routing, memory, guardrails."""
