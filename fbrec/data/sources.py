"""Where each real dataset is published, and the size and sha256 of every file fbrec reads from it.

A dataset comes as downloads (a plain file, or a zip whose members are taken) that `fbrec.data.fetch` checks against
the pins below before anything is placed in the data directory. The pins are the bytes of the copies in
../shared/data (each folder's SOURCE.md gives the repository and commit they were copied from); a download whose
bytes differ is refused rather than read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Download:
    """One URL. `files` maps each file written (relative to the dataset's folder) to what it is taken from: the
    download itself (""), or a member of the zip the download is."""

    url: str
    files: dict[str, str]
    derive: Callable[[bytes], bytes] | None = None   # applied to a plain file's bytes before the pin is checked


@dataclass(frozen=True)
class Source:
    name: str                              # the dataset name, also its folder in the data directory
    publisher: str
    terms: str                             # shown before the first download
    downloads: tuple[Download, ...]
    pins: dict[str, tuple[int, str]] = field(default_factory=dict)   # file -> (size in bytes, sha256)
    note: str = ""                         # where the bytes come from when it is not the publisher's own site


def drop_last_user_block(raw: bytes) -> bytes:
    """The Taobao sample's derivation (SOURCE.md): the upstream file is a byte prefix of UserBehavior.csv, cut inside
    the last user's block; every row of that last user is dropped, nothing else changes."""
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        return raw
    last_user = lines[-1].split(b",", 1)[0]
    while lines and lines[-1].split(b",", 1)[0] == last_user:
        lines.pop()
    return b"\n".join(lines) + b"\n"


def _github(repo: str, commit: str, folder: str, files: dict[str, str]) -> tuple[Download, ...]:
    base = f"https://raw.githubusercontent.com/{repo}/{commit}/{folder}"
    return tuple(Download(f"{base}/{path}", {dest: ""}) for dest, path in files.items())


_ML100K = ("u.data", "u.item", "u.user", "u.genre", "u.occupation", "u.info", "README")
_COAT = ("README.txt", "train.ascii", "test.ascii", "propensities.ascii", "user_item_features/item_features.ascii",
         "user_item_features/item_features_map.txt", "user_item_features/user_features.ascii",
         "user_item_features/user_features_map.txt")
_AMAZON = tuple(f"Scientific.{part}" for part in ("text", "train.inter", "valid.inter", "test.inter", "item2index",
                                                 "user2index"))
_TMALL = ("README", "buy/train.txt", "buy/test.txt", "cart/train.txt", "cart/test.txt", "view/test.txt",
          "view/s_adj_mat.npz")

SOURCES: dict[str, Source] = {s.name: s for s in (
    Source(
        "movielens-100k", "GroupLens Research, University of Minnesota (Harper & Konstan, ACM TiiS 2015)",
        "research use only; acknowledge the data set in publications; no redistribution and no commercial use without "
        "GroupLens' permission (the full terms are in the README it comes with)",
        (Download("https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                  {name: f"ml-100k/{name}" for name in _ML100K}),),
        {"u.data": (1979173, "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"),
         "u.item": (236344, "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701"),
         "u.user": (22628, "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c"),
         "u.genre": (202, "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb"),
         "u.occupation": (193, "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d"),
         "u.info": (36, "5b0a40b2e47a729ee6203063f6dcf8790c2e63f5a18663e6ee318a72c5f3c27b"),
         "README": (6750, "4883b8cf340ed0059971b33f56ad3adc88a40792108ebca3d24aafc4c82e8b52")}),
    Source(
        "coat", "Schnabel et al., Recommendations as Treatments (ICML 2016), Cornell University",
        "no terms are stated; treat as research-only and cite the ICML 2016 paper",
        _github("DongHande/AutoDebias", "39101ad5a67194ef3828268102cf9b23487cb759", "datasets/coat",
                {name: name for name in _COAT}),
        {"README.txt": (184, "cda6f0f12aa148f5391561ef95a5f2dd6f7e3838ec17e84fcb615bc11a7ffae0"),
         "train.ascii": (174290, "a87bd9e7eaf3b89f976df3f25d4aa5d5d871be8a00b58947df9e6e015559bd37"),
         "test.ascii": (174290, "de6714ab105a5e0be8166be7fd313901b29f9a09c3bea307901457d1d71847e6"),
         "propensities.ascii": (2175000, "a72e3142a413623c4a6b9d20c4f70fcc017e0db67cc3eb242116f69fb8fb9661"),
         "user_item_features/item_features.ascii":
             (20100, "edea8217ec5606779b4d3bf819f7591dc63bcd5194d619e8048c2322d07630b1"),
         "user_item_features/item_features_map.txt":
             (498, "2675dfaa38b89a9cbb1997f0cfcd46ed7e0e366dc515d12d95508d1f356e5d25"),
         "user_item_features/user_features.ascii":
             (8410, "d8f9531b601c54a7272602f8b21fa6cb4652cbf122e35d8615ea9645ebbf1b1f"),
         "user_item_features/user_features_map.txt":
             (211, "3b8c825ad4445d4a46a400629c5fb43c805ff5a7982b2e436b69e7262c8a013a")},
        "the files as the AutoDebias release (SIGIR 2021) vendors them unchanged; the bytes of Cornell's own archive "
        "could not be checked, so these are the pinned ones"),
    Source(
        "taobao-userbehavior-sample", "Alibaba Group, Tianchi dataset 649 (UserBehavior)",
        "no terms are stated with this sample; the Tianchi page for dataset 649 is the authority: treat it as "
        "research-only and non-commercial",
        (Download("https://raw.githubusercontent.com/Haohanblue/mydeep/ef812addc2c164f1d3ef48564a5c393ec293bc61/"
                  "mydeep/UserBehavior.csv", {"UserBehavior_head.csv": ""}, derive=drop_last_user_block),),
        {"UserBehavior_head.csv": (3171621, "6f7023508e9c8eba2b067afb116771329c4ef8860112f88415daf22e97726a09")},
        "the first 3,178,496 bytes of UserBehavior.csv as one repository republished them; the truncated last user's "
        "rows are dropped"),
    Source(
        "amazon-scientific-text", "McAuley lab, Amazon Review Data 2018 (Ni et al., EMNLP 2019), in UniSRec's format",
        "no terms are stated; the Amazon Review Data is distributed for research use: do not republish it",
        _github("ysh-1998/CoWPiRec", "db47560c2364650d22afc77080717287daec5079", "dataset/Scientific",
                {name: name for name in _AMAZON}),
        {"Scientific.text": (859222, "95887e6bda76e54f59b71b566320520d5da74e21d3b6ff8f20bfb6e8e84aa831"),
         "Scientific.train.inter": (929295, "7284f6489d956fa20c9b64ffc84569264320edba5c3bc2fcb22db2ea083a1163"),
         "Scientific.valid.inter": (271473, "5f37c84d3b54617cdc46638c89dfe8741c7efc4987acd5eb64de2cbd4311f46c"),
         "Scientific.test.inter": (309842, "546da7e5f44002b4518d7fd58066684bc09613f76c240914e16976d57cfe7083"),
         "Scientific.item2index": (69050, "896ab1017508cf20834d3d0537da9f8f624324223a835af272a98ba16f8c087a"),
         "Scientific.user2index": (165602, "f0162b1a3a0c6b7e816f86208e7b36f65d6787923126f9558fbc6d368e4c4974")},
        "the CoWPiRec release's preprocessed copy"),
    Source(
        "tmall-mbcgcn", "Alibaba logs as preprocessed by Cheng et al., MB-CGCN (WWW 2023)",
        "no terms are stated; treat as research-only and non-commercial, do not republish, cite MB-CGCN",
        _github("SS-00-SS/MBCGCN", "931f9c103817cdfa280353c506f4e3cb08306a1c", "Data",
                {name: name for name in _TMALL}),
        {"README": (28, "f76d443ed401dfe6dd9abe125ce93a88a980de9248ee1eddb261c0c7f4a5f355"),
         "buy/train.txt": (531627, "4d8619e44b5292736daff25b18ff9b295893e7521e3d79faff4a62d48dd80e6e"),
         "buy/test.txt": (157169, "aa643ff3e3f072238740b684277e65ee2eaeecdcd3c5ec1134756d4adfb1672b"),
         "cart/train.txt": (972161, "481a048118ad3837208534a4367c2f20f290cd2a6f9297a621897655b62f2dbc"),
         "cart/test.txt": (157925, "629f9fa78ed2a0e1066765175eafa67cda94410162aabfc7c6d2b66ecdd38ad1"),
         "view/test.txt": (158313, "924648c230c6fdf2cbe7d02088d2df8393c76b877cac921cc235b1d7bcecf66b"),
         "view/s_adj_mat.npz": (3710630, "93eb50aa5e09be220925d9f97f51a5247be5e5167e9e102af73fdffb0f84fd48")}),
)}
