"""Preprocessing fitted on the training split only, shipped inside the logged model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


class SchemaError(ValueError):
    pass


@dataclass
class Preprocessor:
    """Numeric scaling and category vocabularies learned from train, applied everywhere else."""

    numerical: list[str]
    categorical: list[str]
    means: dict[str, float]
    stds: dict[str, float]
    vocab: dict[str, list[str]]

    @classmethod
    def fit(cls, df: pd.DataFrame, numerical: list[str], categorical: list[str]) -> Preprocessor:
        cls._require(df, [*numerical, *categorical], "training data")
        num = df[numerical].astype("float64")
        means = num.mean().fillna(0.0)
        stds = num.std().fillna(1.0).replace(0.0, 1.0)
        vocab = {c: sorted(df[c].dropna().astype(str).unique().tolist()) for c in categorical}
        return cls(list(numerical), list(categorical), means.to_dict(), stds.to_dict(), vocab)

    @staticmethod
    def _require(df: pd.DataFrame, cols: list[str], what: str) -> None:
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise SchemaError(f"{what} lacks feature column(s) {missing}; the model was trained "
                              "with them: supply them (nulls are allowed)")

    def _numeric(self, df: pd.DataFrame) -> pd.DataFrame:
        try:
            return df[self.numerical].apply(pd.to_numeric, errors="raise").astype("float64")
        except (ValueError, TypeError) as exc:
            raise SchemaError(f"non-numeric value in a numeric feature column ({exc}); "
                              "clean the column or send null") from None

    def frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """Model-ready frame for XGBoost: floats, and categoricals with the train vocabulary."""
        self._require(df, [*self.numerical, *self.categorical], "input")
        out = self._numeric(df)
        for c in self.categorical:
            out[c] = pd.Categorical(df[c].astype("string").astype(object), categories=self.vocab[c])
        return out

    def arrays(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(numeric, categorical) arrays for the MLP: scaled numerics with missing indicators,
        and category codes with 0 reserved for missing or unseen."""
        self._require(df, [*self.numerical, *self.categorical], "input")
        num = self._numeric(df)
        missing = num.isna().to_numpy(np.float32)
        scaled = ((num - pd.Series(self.means)) / pd.Series(self.stds)).fillna(0.0)
        x_num = np.concatenate([scaled.to_numpy(np.float32), missing], axis=1)
        codes = [pd.Categorical(df[c].astype("string").astype(object),
                                categories=self.vocab[c]).codes.astype(np.int64) + 1
                 for c in self.categorical]
        x_cat = np.stack(codes, axis=1) if codes else np.zeros((len(df), 0), np.int64)
        return x_num, x_cat

    @property
    def cardinalities(self) -> list[int]:
        return [len(self.vocab[c]) + 1 for c in self.categorical]
