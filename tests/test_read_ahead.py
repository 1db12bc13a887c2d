"""Pieces read one ahead: in order, the next read beside the caller's work, never two ahead."""

import threading

import pytest

from resources.read_ahead import read_ahead


def test_the_next_piece_is_read_while_the_caller_handles_the_current_one_and_no_further():
    pieces = [1, 2, 3, 4]
    reading = {piece: threading.Event() for piece in pieces}
    started: list[int] = []

    def read(piece: int) -> int:
        started.append(piece)
        reading[piece].set()
        return piece * 10

    seen = []
    for piece, value in read_ahead(read, pieces):
        if piece < pieces[-1]:
            assert reading[piece + 1].wait(timeout=5), "the next read runs beside the caller"
        assert max(started) <= piece + 1, "at most one piece read ahead"
        seen.append((piece, value))
    assert seen == [(1, 10), (2, 20), (3, 30), (4, 40)]


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
