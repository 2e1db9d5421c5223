"""The words the layers above share, defined once, so that the live client and the virtual Live can both
speak them without importing each other.

- `keys`: what a config key's unit suffix means, and the names Live gives the parameter it sets;
- `display`: what a parameter's display string says, and the raw value that shows a physical one;
- `roles`: which device of the chain model a Live device is, by its name;
- `fader`: Live's fader law (raw 0.85 is 0 dB), which the DSP never needs: it is given the fader in dB;
- `osc`: the OSC codec and the rules of an AbletonOSC exchange (the error address, a reply's echoed ids,
  what a caller needs of a connection);
- `export`: what starts an export (the `Exporter` protocol), for live's exporters and the virtual Live's.

The pass rule is not here but in `objectives.limits`: `objectives/` is a top-level package of the design,
sits in this same layer and imports nothing of autotune, so a copy or a re-export here would only give one
rule two names. Errors and their exit codes are in `autotune.errors`, also of this layer.
"""
