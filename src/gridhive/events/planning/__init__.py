"""The parts of the event planner: plain data, setpoints, pre-charge, supersession, summary.

`gridhive.events.planner.plan_event` puts them together; import from there.
"""
