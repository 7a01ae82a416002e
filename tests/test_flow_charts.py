"""The matplotlib views, fed by a real broker."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from flow_support import connect, private_vhost  # noqa: E402

from helpers.charts import Recorder, plot_depths, plot_rates, plot_spread, rates  # noqa: E402


def test_recorder_depths_and_rates(broker):
    with private_vhost(broker, "charts") as b:
        connection = connect(b)
        ch = connection.channel()
        ch.queue_declare("flowdev.depth", durable=True)
        with Recorder(b, prefix="flowdev.", interval=0.1) as rec:
            for i in range(30):
                ch.basic_publish("", "flowdev.depth", str(i).encode())
            ch.basic_get("flowdev.depth")  # one unacked
            connection.process_data_events(time_limit=0.3)
        connection.close()
        last = rec.samples[-1]
        assert rec.queues() == ["flowdev.depth"]
        assert (last.ready["flowdev.depth"], last.unacked["flowdev.depth"]) == (29, 1)
        assert rec.samples[0].ready.get("flowdev.depth", 0) == 0
        fig = plot_depths(rec)
        (ax,) = fig.axes
        assert [line.get_label() for line in ax.lines] == [
            "flowdev.depth ready",
            "flowdev.depth unacked",
        ]
        assert ax.lines[0].get_ydata()[-1] == 29
        assert set(rates(rec)) == {"publish", "deliver_get", "ack"}
        assert len(plot_rates(rec).axes[0].lines) == 3


def test_plot_spread_bars():
    fig = plot_spread({"worker-1": 5, "worker-2": 3}, "Fair dispatch")
    (ax,) = fig.axes
    assert [p.get_height() for p in ax.patches] == [5, 3]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["worker-1", "worker-2"]
    assert ax.get_title() == "Fair dispatch"
