"""The WordPiece tokenizer train_bert makes: no review word may vanish into [UNK]."""

from __future__ import annotations

from pathlib import Path

from scripts.training.train_bert import train_tokenizer


def test_a_rare_syllable_keeps_its_word(tmp_path: Path):
    # 1,200 distinct Hangul syllables, the last ones rarer than the first: more than the
    # 1,000-character alphabet the trainer keeps by default, which made every word holding
    # one of the rarer syllables a single [UNK] (15 % of the test reviews lost a word)
    syllables = [chr(0xAC00 + i) for i in range(1200)]
    corpus = [" ".join(syllables[:1000]) + " 좋다"] * 5 + [" ".join(syllables)] * 2
    rare_word = syllables[1100] + syllables[1150]
    corpus += [f"이 영화 {rare_word} 이다"] * 2

    tokenizer = train_tokenizer(corpus, vocab_size=2000, out_dir=tmp_path)

    ids = tokenizer(f"이 {rare_word}", add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids).replace(" ", "").endswith(rare_word)
