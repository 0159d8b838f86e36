"""eibert services: the edge node, the cloud API and what they share. Never imports model_store or torch."""
