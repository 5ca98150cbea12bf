"""Running a job's server and sites: the run plan, building from it, the processes.

- :mod:`.plan`: a checked job resolved for one run, every site's configuration
  (:func:`~.planner.plan_run`, :class:`~.plan.RunPlan`), written once by the launcher.
- :mod:`.build`: a site's components instantiated from its plan, in dependency order.
- :mod:`.spec`: :class:`~.spec.WorkerSpec`, what a worker process is started with (one
  typed, frozen spec, written once), and the one wait for the server's port.
- :mod:`.worker` is the entry point of one process of a launch: the server
  (:mod:`.server_process`), one or more sites (:mod:`.site_process`) or TensorBoard
  (:mod:`.tensorboard_process`); :mod:`.filters` applies a config's task filters.
- :mod:`.context` is the run context components see (FLARE's FLContext, reduced).
- :mod:`.fed_events` carries events from sites to the server's components.
- :mod:`.logs` routes each site's log lines to its own file.
- :mod:`.live_metrics` prints the metric lines a launch shows while it runs.

The link between the server and its sites lives in :mod:`flconfig.transport`.
"""
