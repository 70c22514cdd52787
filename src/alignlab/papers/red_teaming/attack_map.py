"""The map of red-team attacks (Ganguli et al. 2022 Fig. 2): each attack embedded (all-MiniLM-L6-v2),
clustered, projected to two dimensions with UMAP and drawn coloured by how well it worked; each cluster
labelled by its most distinctive words (class-based TF-IDF).

- Clusters ([D]): k-means on the unit embeddings with k = sqrt(n / 2) rounded, between 2 and 12.
- Labels: c-TF-IDF (Grootendorst 2022, BERTopic): a word's frequency in a cluster times
  log(1 + mean words per cluster / the word's frequency over all clusters); the top `label_words` words,
  English stop words left out.
- Projection: UMAP (umap-learn, cosine metric, seeded) where there are at least 10 attacks; fewer are
  projected on their first two principal components, which UMAP's neighbour graph needs more points than.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class AttackMap:
    points: np.ndarray  # (n, 2)
    clusters: np.ndarray  # (n,) cluster index
    labels: list[str]  # per cluster: its distinctive words
    projection: str  # "umap" | "pca"


def cluster_count(n: int) -> int:
    return int(min(12, max(2, round(np.sqrt(n / 2))))) if n >= 2 else 1


def class_tfidf_labels(texts: list[str], clusters: np.ndarray, label_words: int = 4) -> list[str]:
    from sklearn.feature_extraction.text import CountVectorizer

    k = int(clusters.max()) + 1 if len(clusters) else 0
    documents = [" ".join(t for t, c in zip(texts, clusters, strict=True) if c == j) for j in range(k)]
    try:
        vectorizer = CountVectorizer(stop_words="english", token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")
        counts = vectorizer.fit_transform(documents).toarray().astype(float)
    except ValueError:  # nothing but stop words
        return ["" for _ in range(k)]
    words = vectorizer.get_feature_names_out()
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    mean_words = counts.sum() / max(k, 1)
    idf = np.log(1 + mean_words / np.maximum(counts.sum(axis=0), 1))
    scores = tf * idf
    return [", ".join(words[i] for i in np.argsort(-row)[:label_words] if row[i] > 0) for row in scores]


def build_map(texts: list[str], vectors: np.ndarray, seed: int = 1234, label_words: int = 4) -> AttackMap:
    n = len(texts)
    if n == 0:
        return AttackMap(np.zeros((0, 2)), np.zeros(0, dtype=int), [], "pca")
    k = min(cluster_count(n), n)
    if k > 1:
        from sklearn.cluster import KMeans

        clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(vectors)
    else:
        clusters = np.zeros(n, dtype=int)
    if n >= 10:
        import umap

        reducer = umap.UMAP(n_neighbors=min(15, n - 1), metric="cosine", random_state=seed, n_jobs=1)
        points, projection = reducer.fit_transform(vectors), "umap"
    else:
        centred = vectors - vectors.mean(axis=0)
        _, _, axes = np.linalg.svd(centred, full_matrices=False)
        points = centred @ axes[:2].T if n > 1 else np.zeros((n, 2))
        points = np.pad(points, ((0, 0), (0, max(0, 2 - points.shape[1]))))
        projection = "pca"
    return AttackMap(
        np.asarray(points, dtype=float),
        clusters,
        class_tfidf_labels(texts, clusters, label_words),
        projection,
    )


def map_figure(attack_map: AttackMap, colour: np.ndarray, colour_label: str, title: str):
    """The attacks on the map, coloured by `colour` (success 0/1, or a rating), each cluster's label at its
    centre."""
    from alignlab.experiments.figures import new_figure

    fig = new_figure(7.5, 5.5)
    ax = fig.subplots()
    shown = ax.scatter(
        attack_map.points[:, 0],
        attack_map.points[:, 1],
        c=colour,
        cmap="coolwarm",
        s=14,
        alpha=0.8,
        linewidths=0,
    )
    fig.colorbar(shown, ax=ax, label=colour_label)
    for j, label in enumerate(attack_map.labels):
        members = attack_map.points[attack_map.clusters == j]
        if len(members) and label:
            x, y = members.mean(axis=0)
            ax.annotate(
                label,
                (x, y),
                fontsize=7,
                ha="center",
                bbox={"boxstyle": "round", "fc": "white", "alpha": 0.7},
            )
    ax.set_title(f"{title} ({attack_map.projection.upper()} of sentence embeddings)", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def cluster_rows(attack_map: AttackMap, colour: np.ndarray) -> list[tuple]:
    """(cluster, attacks, label, mean of `colour`) for the report's table."""
    return [
        (
            j,
            int((attack_map.clusters == j).sum()),
            label,
            round(float(colour[attack_map.clusters == j].mean()), 3),
        )
        for j, label in enumerate(attack_map.labels)
        if (attack_map.clusters == j).any()
    ]
