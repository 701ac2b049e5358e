"""The sales managers' console: server-rendered pages at `/console` over the SLA monitor's
windows and lifecycles, the router's decisions, pools and reps, and scoring's profiles."""
