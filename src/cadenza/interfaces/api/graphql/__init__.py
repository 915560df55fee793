"""GraphQL at ``/graphql``: queries, mutations and live subscriptions over the API's use cases."""

from cadenza.interfaces.api.graphql.mount import build_schema, mount_graphql

__all__ = ["build_schema", "mount_graphql"]
