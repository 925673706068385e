"""weaviate-client, imported without its side effects on the process's warnings.

On import, weaviate-client pulls in authlib's httpx integration, which warns (through an "always"
filter authlib installs) that authlib wants httpx2: a matter between those libraries that nobody
running this project can act on. weaviate-client then calls ``simplefilter("default")``, turning
on every warning of every library for the whole process. Both modules that use weaviate import
this one first: the import runs once, with that one warning ignored, and the filters are
restored after it.
"""

import warnings

with warnings.catch_warnings():
    from authlib.deprecate import AuthlibDeprecationWarning

    warnings.filterwarnings(
        "ignore", message="The httpx module is deprecated", category=AuthlibDeprecationWarning
    )
    import weaviate  # noqa: F401
