"""``sowlv2 serve``: a Gradio web page over ``SOWLv2Pipeline.process_input``.

Upload an image, several images or a video, type prompts, run, and look at the result in the page:
the overlay image or the overlay video (H.264, plays in the browser) with a frame slider, a table of
the tracks, the objects of the chosen frame, and a zip of the whole result folder.

Serving rules:

* the models are loaded once, at start, and kept (a model typed in the page is loaded once and cached);
* one job runs at a time (Gradio's queue with ``concurrency_limit=1`` plus a lock around the models);
  the others wait in the queue, which shows their position;
* each job has its own folder under the work folder, removed when the same browser session starts a
  new job, when it is cancelled or fails, or ``ttl_s`` seconds after it was made;
* uploads over the limit, files that are neither an image nor a video, and empty prompts get a
  message in the page; a failing job is reported and the server goes on.

Only the command line (:func:`serve_main`) prints; gradio is imported lazily, so importing this module
needs only the core dependencies. ``pip install 'sowlv2[app]'`` installs gradio.

The package: ``jobs`` (the page's logic without gradio: upload checks, job folders, the model cache,
running a job), ``page`` (the gradio page: :func:`build_app`, :func:`serve`) and ``cli``
(``sowlv2 serve``). Importing it does not import gradio.
"""

from .cli import SERVER_KEYS, serve_main, serve_parser
from .jobs import (
    DEFAULT_HOST,
    DEFAULT_MAX_UPLOAD_MB,
    DEFAULT_PORT,
    DEFAULT_TTL_S,
    JobCancelled,
    JobStore,
    JobView,
    ModelCache,
    Session,
    WebApp,
    split_prompts,
)
from .page import build_app, import_gradio, serve, wait

__all__ = ["DEFAULT_HOST", "DEFAULT_MAX_UPLOAD_MB", "DEFAULT_PORT", "DEFAULT_TTL_S", "JobCancelled", "JobStore",
           "JobView", "ModelCache", "SERVER_KEYS", "Session", "WebApp", "build_app", "import_gradio", "serve",
           "serve_main", "serve_parser", "split_prompts", "wait"]
