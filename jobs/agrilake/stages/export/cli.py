"""`agrilake export`: a platform's curated datasets of a date, from gold to the platform's bucket.

    agrilake export --platform bank|gov --date D [--dataset NAME ...] [--link] [--links-only] [--expires S]

Exports the platform's datasets of each date (agrilake.stages.export). `--dataset` narrows it to some
of them, unless the platform's others of D came from another gold publication (then all go, with
a WARNING). `--link` prints a presigned, expiring GET link per manifest (signed with the exporting
identity; default 1 day, at most 7, SigV4's limit); `--links-only` does just that for an earlier
export. Results are logged; stdout is kept for the links, so scripts can read them.

S3 credentials: AGRILAKE_S3_ENDPOINT / _ACCESS_KEY / _SECRET_KEY, else the Airflow connection
AGRILAKE_S3_CONN_ID (type aws; endpoint_url in extra), else the local object store's generated file
(agrilake.core.credentials). Only the access key id is ever logged, masked.
"""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from agrilake.core import context, dates
    from agrilake.core.credentials import CredentialsMissing, s3_target
    from agrilake.core.s3 import mask, s3_client
    from agrilake.delivery import ExportError, protocol
    from agrilake.stages.export import PLATFORMS, bucket_for, export_platform

    ctx = context.from_env("agrilake-export")
    s = ctx.settings
    parser = argparse.ArgumentParser(prog="agrilake export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", required=True, choices=sorted(PLATFORMS))
    dates.add_date_options(parser, what="as-of date D", ranges=True)
    parser.add_argument("--dataset", action="append", help="only this dataset (repeatable)")
    parser.add_argument("--link", action="store_true", help="after exporting, print a presigned link per manifest")
    parser.add_argument("--links-only", action="store_true", help="print links for an existing export, no export")
    parser.add_argument("--expires", type=int, default=s.export_link_expiry_s,
                        help=f"link lifetime in seconds (default AGRILAKE_EXPORT_LINK_EXPIRY={s.export_link_expiry_s})")
    args = parser.parse_args(argv)
    wanted = dates.from_options(args)
    for d in args.dataset or ():
        if d not in PLATFORMS[args.platform]:
            parser.error(f"{d!r} is not a {args.platform} dataset: {', '.join(PLATFORMS[args.platform])}")
    try:
        target = s3_target(s)
        log.info("S3 endpoint %s", target.describe())
        client = s3_client(target)
        for day in dates.resolve_all(ctx, wanted):  # `latest` needs the ingest log, so a session
            if not args.links_only:
                export_platform(ctx, args.platform, day, client=client, datasets=args.dataset)
            if args.link or args.links_only:
                log.info("signing links as %s", mask(target.access_key))
                for dataset, url, expiry in protocol.manifest_links(
                        client, bucket_for(args.platform, s), day, args.dataset or list(PLATFORMS[args.platform]),
                        expires=args.expires):
                    print(f"link {dataset} as_of={day} (expires {expiry:%Y-%m-%dT%H:%M:%SZ}): {url}")
    except (ExportError, CredentialsMissing) as exc:
        print(f"agrilake export: {exc}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:  # their messages name bucket and key, never a secret
        print(f"agrilake export: S3 error: {exc}", file=sys.stderr)
        return 1
    return 0
