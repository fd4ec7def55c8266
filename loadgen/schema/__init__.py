"""JSON Schemas of the run report, shipped as package data."""
