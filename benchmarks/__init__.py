"""Benchmarks: miest's estimators against bmi's and other peers on tasks with known MI.

``miest-bench run --suite quick`` runs a suite (a list of jobs: task x estimator x seed
x sample size), caching each job's result row on disk so an interrupted run resumes;
``miest-bench report --suite quick`` writes REPORT.md and plots from the CSV.
"""
