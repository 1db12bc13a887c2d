"""Pieces read ahead: in order, the first alone, the next ones beside the caller's work, never
more than `READ_AHEAD` ahead."""

import threading

import pytest

from resources.read_ahead import READ_AHEAD, read_ahead


def test_the_next_pieces_are_read_while_the_caller_handles_the_current_one_and_no_further():
    pieces = list(range(1, 7))
    reading = {piece: threading.Event() for piece in pieces}
    started: list[int] = []
    first_alone: list[bool] = []

    def read(piece: int) -> int:
        started.append(piece)
        reading[piece].set()
        if piece == pieces[0]:
            first_alone.append(not reading[pieces[1]].wait(timeout=0.5))
        return piece * 10

    seen = []
    for piece, value in read_ahead(read, pieces):
        for ahead in pieces[piece : piece + READ_AHEAD]:
            assert reading[ahead].wait(timeout=5), "the next pieces are read beside the caller"
        assert max(started) <= piece + READ_AHEAD, f"at most {READ_AHEAD} pieces read ahead"
        seen.append((piece, value))
    assert first_alone == [True], "the first piece is read alone"
    assert seen == [(piece, piece * 10) for piece in pieces]


def test_an_error_of_a_read_is_raised_at_its_piece_after_the_pieces_before_it():
    def read(piece: int) -> int:
        if piece == 2:
            raise ValueError("piece 2 is unreadable")
        return piece

    handled = []
    with pytest.raises(ValueError, match="piece 2 is unreadable"):
        for piece, _ in read_ahead(read, [1, 2, 3]):
            handled.append(piece)
    assert handled == [1]


def test_no_piece_reads_nothing():
    assert list(read_ahead(lambda piece: piece, [])) == []
