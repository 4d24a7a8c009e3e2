"""ACD adapter: agents, queues and waiting callers on Asterisk, around the pure routing core."""
