"""SOWLv2: text-prompted segmentation and tracking in images and videos (OWLv2 + SAM 2 + V-JEPA 2).

Importing the package changes no global state and loads no model.
"""

__version__ = "0.1.0"
