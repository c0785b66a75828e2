"""`agentrl sweep`: configs x seeds, one resumable command, one comparison report."""
