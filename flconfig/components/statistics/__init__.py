"""Federated statistics: FLARE's StatisticsController and its site-side parts.

The server's :class:`~.controller.StatisticsController` asks every site for its local
statistics in two tasks (``fed_stats``): first count, sum, mean, min, max and quantiles;
then, with the global count, mean, min and max, the histograms and the variance around the
global mean. Each site's :class:`~.executor.StatisticsExecutor` computes them with the job's
generator (a ``nvflare.app_common.abstract.statistics_spec.Statistics``), its
:class:`~.privacy.StatisticsPrivacyFilter` applies the privacy cleansers before the
result leaves the site, and the server combines them into each site's and the global
statistics, which :class:`~.writer.JsonStatsFileWriter` writes as FLARE does.

On the wire a site's statistics are plain JSON (never pickled, unlike FLARE's FOBS):
``{statistic: {dataset: {feature: value}}}``, a histogram as ``{"hist_type", "bins":
[[low, high, count], ...], "hist_name"}``.
"""
