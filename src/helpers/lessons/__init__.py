"""The reference implementations that the chapters teach, written once and tested.

Chapter 3: ``backprop``, ``attention``. Chapter 4: ``mlp``, ``step_cost``, ``finetune``.
Chapter 5: ``scaling``, ``attribution``, ``quantization``. Each notebook shows the
framework code on the page first; these modules are the tested convenience it then calls.
Frameworks are imported inside the functions that need them.
"""
