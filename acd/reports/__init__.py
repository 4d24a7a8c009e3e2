"""Reports supervisors run the center from: queues, agents and the IVR, from PostgreSQL.

``queries`` adds up in SQL and divides with ``acd.core.kpi``; ``render`` prints the rows
as a table, CSV or JSON. The CLI (``acd report``) and the HTTP API share both.
"""
