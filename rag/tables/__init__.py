"""Task tables: records of every task row / item (records.py), names in questions matched to
the documents' names (names.py), questions over a whole table recognised (questions.py) and
answered from the records with every row cited (answers.py).

    from rag.tables import TaskTable, TableAnswerer, parse
"""
from .answers import TableAnswerer
from .questions import TableQuestion, parse, task_filter
from .records import TASKS_FILE, TaskFilter, TaskTable, build_records, check_records, load_records, save_records

__all__ = ["TASKS_FILE", "TableAnswerer", "TableQuestion", "TaskFilter", "TaskTable", "build_records",
           "check_records", "load_records", "parse", "save_records", "task_filter"]
