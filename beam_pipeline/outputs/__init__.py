"""What a run writes besides the shards, and where it may write.

``location``: the checks on the output path, ``--overwrite`` and the manifest written before the
run; ``finalize``: the last step (``stats.json``, ``report.html``, ``finetune_job.json``, the
temporary files' removal, then ``_SUCCESS``); ``report`` renders the page from its template
(``templates/report.html.j2``); ``job_request`` builds the fine-tuning job's request.
"""
