"""LLM feedback modules: text encoders, one client interface with offline / OpenAI-compatible / local backends,
and user and item profiles for RLMRec alignment. Models never import this package: they read the profile folder
it writes through fbrec.data.profiles."""

from fbrec.llm.backends import BACKENDS, make_backend
from fbrec.llm.client import Completion, LLMAnswerError, Schema, Task, Usage
from fbrec.llm.encoders import TextEncoder
from fbrec.llm.profiles import profile_tasks, write_profiles
from fbrec.llm.text import ITEM_TEMPLATES, item_texts

__all__ = ["BACKENDS", "ITEM_TEMPLATES", "Completion", "LLMAnswerError", "Schema", "Task", "TextEncoder", "Usage",
           "item_texts", "make_backend", "profile_tasks", "write_profiles"]
