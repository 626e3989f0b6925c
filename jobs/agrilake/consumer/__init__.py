"""The platforms' side: what a bank's or a government's integration team runs to take a delivery.

Written as a consumer would write it: boto3, hashlib and pyarrow, with the platform's own key, and
nothing of the pipeline's code, so that it checks the deliveries rather than sharing their bugs.
"""
