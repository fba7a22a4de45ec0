"""Text datasets from fixtures in each corpus' released layout; vocab, tokenizer and LM batching."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import ndcore
from nddata.datasets import (
    IMDB, SNLI, SST, TREC, TranslationDataset, Vocab, WikiText2, WikiText103, batchify,
    build_vocab_from_iterator, get_batch, get_tokenizer, numericalize,
)


def test_imdb(tmp_path):
    for split in ("train", "test"):
        for label, texts in (("pos", ["Great film!", "Loved it"]), ("neg", ["Awful.<br />Bad"])):
            d = tmp_path / "aclImdb" / split / label
            d.mkdir(parents=True)
            for i, t in enumerate(texts):
                (d / f"{i}_{7 + i}.txt").write_text(t, encoding="utf-8")
            (d / "urls.ignored").write_text("x")
    ds = IMDB(str(tmp_path), split="test")
    assert list(ds) == [("neg", "Awful.<br />Bad"), ("pos", "Great film!"), ("pos", "Loved it")]
    assert ds.targets == ["neg", "pos", "pos"] and ds.class_to_idx == {"neg": 0, "pos": 1}
    up = IMDB(str(tmp_path), transform=lambda item: (item[0], item[1].upper()))
    assert up[1] == ("pos", "GREAT FILM!")
    with pytest.raises(RuntimeError, match="aclImdb.*download=True fetches http"):
        IMDB(str(tmp_path / "nowhere"))


SST_LINES = [
    "(3 (2 It) (4 (4 (2 's) (4 (3 (2 a) (4 (3 lovely) (2 film)))) (2 .)))",
    "(2 (2 It) (2 (2 is) (2 a) (2 film)))",
    "(0 (1 Truly) (0 (0 awful) (2 -RRB-)))",
    "(1 (2 Not) (1 good))",
]


@pytest.mark.parametrize("fine", [True, False])
def test_sst_ptb_trees(tmp_path, fine):
    d = tmp_path / "sst" / "trees"
    d.mkdir(parents=True)
    (d / "dev.txt").write_text("\n".join(SST_LINES) + "\n")
    ds = SST(str(tmp_path), split="dev", fine_grained=fine)
    if fine:
        assert [lbl for lbl, _ in ds] == ["positive", "neutral", "very negative", "negative"]
        assert ds[0][1] == "It 's a lovely film ."
        assert len(ds.classes) == 5
    else:  # binary drops the neutral sentence
        assert list(ds) == [("positive", "It 's a lovely film ."), ("negative", "Truly awful -RRB-"),
                            ("negative", "Not good")]


def test_trec(tmp_path):
    d = tmp_path / "trec"
    d.mkdir()
    raw = ("DESC:manner How did serfdom develop in and then leave Russia ?\n"
           "ENTY:cremat What films featured the character Popeye Doyle ?\n"
           "HUM:ind Who was Caf\xe9 's founder ?\n").encode("latin-1")
    (d / "TREC_10.label").write_bytes(raw)
    coarse = TREC(str(tmp_path), split="test")
    assert coarse[0] == ("DESC", "How did serfdom develop in and then leave Russia ?")
    assert coarse.classes == ["DESC", "ENTY", "HUM"]
    assert coarse[2][1] == "Who was Caf\xe9 's founder ?"
    fine = TREC(str(tmp_path), split="test", fine_grained=True)
    assert [lbl for lbl, _ in fine] == ["DESC:manner", "ENTY:cremat", "HUM:ind"]


def test_snli(tmp_path):
    d = tmp_path / "snli_1.0"
    d.mkdir()
    rows = [{"gold_label": "neutral", "sentence1": "A man.", "sentence2": "A tall man."},
            {"gold_label": "-", "sentence1": "x", "sentence2": "y"},
            {"gold_label": "contradiction", "sentence1": "A dog.", "sentence2": "No dog."}]
    (d / "snli_1.0_dev.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ds = SNLI(str(tmp_path), split="dev")
    assert list(ds) == [("neutral", "A man.", "A tall man."), ("contradiction", "A dog.", "No dog.")]
    assert ds.class_to_idx["contradiction"] == 2


def test_tokenizer_basic_english():
    tok = get_tokenizer("basic_english")
    assert tok("Hello, World! It's \"great\": (really)?<br />Yes; ok.") == [
        "hello", ",", "world", "!", "it", "'", "s", "great", "(", "really", ")", "?", "yes", "ok", "."]
    assert get_tokenizer(None)("a  b\tc") == ["a", "b", "c"]
    assert get_tokenizer(str.upper)("x") == "X"
    with pytest.raises(ValueError, match="unsupported tokenizer 'spacy'"):
        get_tokenizer("spacy")


def test_vocab_semantics():
    corpus = [["b", "a", "c", "a"], ["c", "a", "d"], ["e"]]
    v = build_vocab_from_iterator(corpus, specials=["<unk>", "<pad>"])
    # Frequency descending, ties alphabetical, specials first.
    assert v.get_itos() == ["<unk>", "<pad>", "a", "c", "b", "d", "e"]
    assert v["c"] == 3 and "d" in v and len(v) == 7
    with pytest.raises(RuntimeError, match="default index is not set"):
        v["zzz"]
    v.set_default_index(v["<unk>"])
    assert v(["a", "zzz"]) == [2, 0] and v.get_default_index() == 0
    assert v.lookup_tokens([3, 2]) == ["c", "a"]
    v2 = build_vocab_from_iterator(corpus, min_freq=2, specials=["<unk>"], special_first=False)
    assert v2.get_itos() == ["a", "c", "<unk>"]
    v3 = build_vocab_from_iterator(corpus, specials=["<unk>"], max_tokens=3)
    assert v3.get_itos() == ["<unk>", "a", "c"]
    v4 = Vocab(["x", "y"])
    v4.insert_token("w", 0)
    assert v4.get_stoi() == {"w": 0, "x": 1, "y": 2}
    with pytest.raises(RuntimeError, match="already exists"):
        v4.append_token("x")


def test_wikitext_lm_pipeline(tmp_path):
    d = tmp_path / "wikitext-2"
    d.mkdir()
    (d / "wiki.train.tokens").write_text(" \n = Title = \n the cat sat on the mat . \n\n the end \n")
    ds = WikiText2(str(tmp_path), split="train")
    assert len(ds) == 5 and ds[2] == " the cat sat on the mat . "
    tok = get_tokenizer("basic_english")
    vocab = build_vocab_from_iterator(map(tok, ds), specials=["<unk>", "<eos>"])
    vocab.set_default_index(vocab["<unk>"])
    ids = numericalize(ds, vocab, tok, eos="<eos>")
    toks = ["=", "title", "=", "<eos>", "the", "cat", "sat", "on", "the", "mat", ".", "<eos>",
            "the", "end", "<eos>"]
    assert ids.dtype == ndcore.int64 and ids.tolist() == vocab(toks)
    src = batchify(ids, 2)  # 15 tokens -> 7 rows x 2 columns, column j = j-th contiguous chunk
    ref = np.array(vocab(toks))[:14].reshape(2, 7).T
    np.testing.assert_array_equal(src.numpy(), ref)
    data, target = get_batch(src, 0, bptt=3)
    np.testing.assert_array_equal(data.numpy(), ref[0:3])
    np.testing.assert_array_equal(target.numpy(), ref[1:4].reshape(-1))
    data, target = get_batch(src, 5, bptt=3)  # the last window is shorter: min(3, 7 - 1 - 5)
    assert tuple(data.shape) == (1, 2)
    np.testing.assert_array_equal(target.numpy(), ref[6])
    with pytest.raises(IndexError, match="leaves no targets"):
        get_batch(src, 6)
    with pytest.raises(ValueError, match="cannot make 20 columns"):
        batchify(ids, 20)
    with pytest.raises(RuntimeError, match="wikitext-103"):
        WikiText103(str(tmp_path))


def test_translation_dataset(tmp_path):
    (tmp_path / "train.de").write_text("Ein Hund .\n\nZwei Katzen .\n")
    (tmp_path / "train.en").write_text("A dog .\nskipped\n Two cats . \n")
    ds = TranslationDataset(str(tmp_path / "train"))
    assert list(ds) == [("Ein Hund .", "A dog ."), ("Zwei Katzen .", "Two cats .")]
    (tmp_path / "bad.en").write_text("one\n")
    (tmp_path / "bad.de").write_text("eins\nzwei\n")
    with pytest.raises(ValueError, match="has 2 lines but"):
        TranslationDataset(str(tmp_path / "bad"))
    with pytest.raises(RuntimeError, match="not found"):
        TranslationDataset(str(tmp_path / "none"), exts=(".fr", ".en"))
    assert os.path.exists(tmp_path / "train.de")
