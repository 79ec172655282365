import asyncio
import threading

from rci.core.threads import OwnThread


async def test_calls_run_in_order_on_one_thread_that_is_not_the_loops() -> None:
    own = OwnThread("test")
    seen: list[tuple[int, str]] = []

    def call(i: int) -> int:
        seen.append((i, threading.current_thread().name))
        return i * 2

    results = await asyncio.gather(*(own.run(call, i) for i in range(5)))
    own.close()
    assert results == [0, 2, 4, 6, 8]
    assert [i for i, _ in seen] == list(range(5))
    assert len({name for _, name in seen}) == 1 and seen[0][1].startswith("test")
    assert seen[0][1] != threading.current_thread().name
