"""A case's files: save a received WhatsApp file to a case, list and download them, send one to
the client over WhatsApp (the same outbox as any file)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.responses import StreamingResponse

from services import accounts, case_files
from services.errors import AuthenticationFailed
from services.models import CaseFileSave, CaseFileSaved, CaseFileSend, CaseFilesPage, WhatsappMessagePublic
from services.storage import RangeNotSatisfiable
from watheeq_ui.api.deps import MAX_ID, IdPath, PrincipalDep, SessionDep, TokenDep
from watheeq_ui.api.errors import responses
from watheeq_ui.api.files import FILE_RESPONSES, file_response, parse_range, range_refused

router = APIRouter(prefix="/cases", tags=["case files"], responses=responses(401))


@router.get("/{case_id}/files", response_model=CaseFilesPage, responses=responses(404))
def list_files(session: SessionDep, principal: PrincipalDep, case_id: IdPath) -> CaseFilesPage:
    """The files kept on a case of the firm, newest first, each with where it came from."""
    return case_files.list_case_files(session=session, tenant_id=principal.tenant_id, actor=principal, case_id=case_id)


@router.post(
    "/{case_id}/files",
    response_model=CaseFileSaved,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": CaseFileSaved, "description": "The file was already on the case: that case file"}, **responses(400, 404, 409, 422)},
)
def save_file(session: SessionDep, principal: PrincipalDep, case_id: IdPath, data: CaseFileSave, response: Response) -> CaseFileSaved:
    """Keep the file of a WhatsApp message (``message_id``) on the case: no copy is made. 201 with
    the case file; 200 with the same one when the file is already on the case; 404 for another
    firm's case or message; 409 when the message has no stored file; 422 (field ``case_id``)
    when the message's client is not the case's."""
    saved = case_files.save_message_file(session=session, tenant_id=principal.tenant_id, actor=principal, case_id=case_id, message_id=data.message_id)
    if not saved.created:
        response.status_code = status.HTTP_200_OK
    return saved


@router.get("/{case_id}/files/{case_file_id}", response_class=StreamingResponse, responses=FILE_RESPONSES)
def download_file(
    session: SessionDep,
    token: TokenDep,
    case_id: IdPath,
    case_file_id: IdPath,
    range_header: Annotated[str | None, Header(alias="range", max_length=100)] = None,
    session_id: Annotated[int | None, Query(alias="session", ge=1, le=MAX_ID, description="with sig: the dashboard session a signed link is for")] = None,
    sig: Annotated[str | None, Query(max_length=200, description="the signature of a link the dashboard made (15 minutes)")] = None,
    download: Annotated[bool, Query(description="send as an attachment")] = False,
) -> Any:
    """A case file's bytes, for members of the firm (anyone else 404); one HTTP byte range supported."""
    if token:
        principal = accounts.principal_for_token(session=session, token=token)
    elif session_id is not None and sig:
        principal = case_files.principal_for_link(session=session, session_id=session_id, case_file_id=case_file_id, signature=sig)
    else:
        raise AuthenticationFailed("not authenticated: send an Authorization: Bearer token")
    start, end = parse_range(range_header)
    try:
        stream = case_files.open_case_file(
            principal, session=session, tenant_id=principal.tenant_id, case_file_id=case_file_id, case_id=case_id, start=start, end=end
        )
    except RangeNotSatisfiable as exc:
        return range_refused(exc)
    return file_response(stream, download=download)


@router.post(
    "/{case_id}/files/{case_file_id}/send",
    response_model=WhatsappMessagePublic,
    status_code=status.HTTP_201_CREATED,
    responses=responses(400, 404, 409, 422),
)
def send_file(session: SessionDep, principal: PrincipalDep, case_id: IdPath, case_file_id: IdPath, data: CaseFileSend) -> WhatsappMessagePublic:
    """Send a case file over WhatsApp to a number (``to``) or a client (``client_id``, whose case
    it must be) with an optional caption, in the same outbox as any file: 201 in PENDING; 409
    while the line is not connected; 422 with the field for bad input."""
    return case_files.send_case_file(session=session, tenant_id=principal.tenant_id, actor=principal, case_file_id=case_file_id, case_id=case_id, data=data)
