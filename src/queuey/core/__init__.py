"""The domain: models, errors, ids and time. Imports nothing else from queuey."""
