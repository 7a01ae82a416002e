"""What the flow diagram knows, below any widget: where its data comes from and what it
makes of it. One concern a module, each importing only those above it in this list:

- `events`: the trace protocol (a firehose message as a `TraceEvent`, and its form on the
  pipe between the firehose process and the kernel);
- `lifecycle`: the event exchange's client events (connections, channels, consumers and
  queues coming and going) as `ClientEvent`s, joined by `EventJoiner`, and their form on
  the pipe;
- `topology`: what the management API lists (exchanges, queues, bindings, consumers,
  connections), parsed by a pure function of its JSON;
- `tracing`: switching a vhost's firehose on and off, shared by every diagram;
- `scope`: which names are drawn, and along which edges, as plain functions of the topology;
- `state`: `FlowState`, the counts and recent messages built from topology and events;
- `caught_up`: when the picture agrees with the broker, a pure decision over reads;
- `firehose`: the process that consumes the firehose (`python -m helpers.flow.firehose`);
- `tracer`: the kernel's side of that process.

Nothing here draws or talks to Jupyter: that is `helpers.view`.
"""
