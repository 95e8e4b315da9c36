"""The library call behind ``python -m pocketnet_tf.web_demo``: check the bundle, map the site,
then serve it or build the folder."""

from __future__ import annotations


def run(config) -> dict | None:
    """The command for a checked config (the library call of this entry point)."""
    from pocketnet_tf.web_demo import build, server, site

    if config.check_bundle:
        from pocketnet_tf.face.pipeline import read_bundle_metadata

        read_bundle_metadata(config.bundle)
    files = site.site_files(config.bundle, web_root=config.web_root, detector=config.detector)
    if config.command == "build":
        summary = build.build_site(files, config.out)
        print(f"wrote {len(summary['files'])} files to {config.out}")
        return summary
    server.serve(files, config.port, quiet=config.quiet, isolation=config.isolation)
    return None
