"""The views of the broker: the live flow diagram (`diagram`), its layout (`layout`, a pure
function of the state) and drawing (`svg`), and the publish panel (`panel`).
Notebooks import them through `helpers.widgets`."""
