"""Draw a family's DAG with networkx and matplotlib."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402

from sdscm_bench.spec import Family  # noqa: E402


def plot_dag(family: Family, path: Path) -> Path:
    graph = family.graph()
    for layer, nodes in enumerate(nx.topological_generations(graph)):
        for node in nodes:
            graph.nodes[node]["layer"] = layer
    layers = list(nx.topological_generations(graph))
    if max(len(layer) for layer in layers) == 1:  # a total order: a column would hide every edge
        pos = nx.circular_layout(graph)
    else:
        pos = nx.multipartite_layout(graph, subset_key="layer", align="horizontal", scale=-1)
    colors = []
    for node in graph:
        if node == family.treatment.variable:
            colors.append("tab:orange")
        elif node == family.outcome.variable:
            colors.append("tab:green")
        else:
            colors.append("lightgray" if family.by_name[node].exogenous else "tab:blue")
    fig, ax = plt.subplots(figsize=(max(7, len(graph) * 0.8), max(5, len(graph) * 0.6)))
    nx.draw_networkx(
        graph, pos, ax=ax, node_color=colors, node_size=900, font_size=8, arrowsize=12,
        connectionstyle="arc3,rad=0.08", edge_color="0.55",
    )  # fmt: skip
    ax.set_title(f"{family.name}: treatment orange, outcome green, exogenous grey")
    ax.axis("off")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
