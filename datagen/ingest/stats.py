"""Dataset statistics in the form of Table 1 of Lu et al. 2024, plus a few more.

>>> stats = table1(tables)  # doctest: +SKIP
>>> print(table1_markdown("steam", stats))  # doctest: +SKIP
| Dataset | #Users | #Items | #Inters | #Sparsity |
"""

from __future__ import annotations

from datagen.ingest.split import CanonicalTables


def table1(tables: CanonicalTables) -> dict:
    users, items, inters = tables.sequences.height, tables.items.height, tables.interactions.height
    lengths = tables.sequences["length"]
    return {
        "users": users,
        "items": items,
        "interactions": inters,
        "sparsity": round(1 - inters / (users * items), 6),
        "history_length_mean": round(float(lengths.mean()), 3),
        "history_length_median": float(lengths.median()),
        "history_length_max": int(lengths.max()),
        "items_without_category": int((tables.items["categories"].list.len() == 0).sum()),
        "categories": int(tables.items["categories"].explode().drop_nulls().n_unique()),
    }


def table1_markdown(name: str, stats: dict) -> str:
    return (
        f"| Dataset | #Users | #Items | #Inters | #Sparsity |\n|---|---:|---:|---:|---:|\n| {name} | {stats['users']:,} | {stats['items']:,} | {stats['interactions']:,} | {stats['sparsity']:.2%} |\n"
    )
