"""The default schema as Django models: what the original system's generated models were."""
